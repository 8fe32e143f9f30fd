"""The category tree: parent, level and a materialized path ("1/4/28") per category, so
ancestors and subtrees are prefix queries, never recursion."""
