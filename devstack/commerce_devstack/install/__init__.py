"""Getting server software onto the machine: cached downloads, builds and Debian packages."""
