"""A deterministic catalog data set for benchmarks: a category tree, products, stock; loaded into
MongoDB, MariaDB and the search index under names of their own (`commerce-dataset`)."""
