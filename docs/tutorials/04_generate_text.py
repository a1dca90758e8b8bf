# %% [markdown]
# # 04_generate_text
