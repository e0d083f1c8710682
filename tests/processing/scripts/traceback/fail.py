"""Crashes with a traceback and leaves no exit message: its last line is the reason."""

if __name__ == "__main__":
    print("reading the rows")
    raise ValueError("row 7 has 3 columns, expected 9")
