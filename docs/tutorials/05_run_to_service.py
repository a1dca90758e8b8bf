# %% [markdown]
# # 05_run_to_service
