"""Provider-neutral types, the error tree, money and deadlines shared by every layer."""
