"""Virtual keys, teams, rate limits, budgets and the exact-match response cache."""
