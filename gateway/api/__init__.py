"""Thin HTTP handlers: parse, call one pipeline/service function, render."""
