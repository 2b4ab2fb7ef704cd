# The notebooks here are hostile submissions for the grader tests, not book notebooks:
# never let pytest --nbval collect (and run) them.
collect_ignore_glob = ["*.ipynb", "*.txt", "*.bin"]
