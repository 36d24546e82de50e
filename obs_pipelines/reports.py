"""Reports: the SQL files in ``sql/``, one report per file, published as catalog views.

A report reads only catalog views (never files), so it works whatever tier the data sits in.
"""

from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


def report_queries(sql_dir: Path = SQL_DIR) -> dict[str, str]:
    """Report name (the file stem) -> its SELECT, in name order."""
    return {
        path.stem: path.read_text().strip().rstrip(";") for path in sorted(sql_dir.glob("*.sql"))
    }
