"""Text as a SQL string literal, for the statements DuckDB cannot take parameters in (DDL,
``SET``, table functions in views): paths, names and credentials stay values, never SQL."""


def sql_literal(text: str | None) -> str:
    """``text`` quoted for SQL (None as the empty string)."""
    return "'" + (text or "").replace("'", "''") + "'"
