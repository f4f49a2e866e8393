"""``python -m prismrec ...``: the same typer app as the ``prismrec`` command."""
from prismrec.cli import app

if __name__ == "__main__":
    app(prog_name="prismrec")
