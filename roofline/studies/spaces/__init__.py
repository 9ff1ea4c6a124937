"""Search spaces named by the studies (DESIGN.md, "Search spaces named by the studies")."""
