"""Helpers shared by the tests: the app in-process, a served gateway, ledger views, fakes."""
