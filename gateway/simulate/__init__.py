"""`stepgate simulate`: replay recorded traffic through classifier and policy, no backend calls."""
