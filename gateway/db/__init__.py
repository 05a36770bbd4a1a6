"""SQLAlchemy metadata shared by the ledger and the keys/teams tables; engines per settings."""
