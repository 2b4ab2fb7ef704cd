# The files here are hostile submissions for the grader tests, not book notebooks;
# they are .json/.bin so that pytest --nbval and nblint leave them alone.
collect_ignore_glob = ["*.json", "*.bin", "*.ipynb"]
