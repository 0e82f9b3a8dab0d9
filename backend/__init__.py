"""kameng's backend: the code vault, the delivery agent, the release API and the CLI."""
