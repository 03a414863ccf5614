"""The grid machinery: reproductions, the experiment and searches (see the floors below)."""
