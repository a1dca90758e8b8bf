# %% [markdown]
# # 02_classify_news
