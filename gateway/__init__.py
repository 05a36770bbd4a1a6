"""Stepgate: a routing gateway for customer-support AI agents."""
