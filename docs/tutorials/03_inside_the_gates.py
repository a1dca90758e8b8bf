# %% [markdown]
# # 03_inside_the_gates
