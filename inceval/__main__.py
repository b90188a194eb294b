"""Allows ``python -m inceval``."""

from inceval.cli import main

if __name__ == "__main__":
    main()
