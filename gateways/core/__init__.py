"""Protocol-neutral gateway parts: the broker link, the error table, the catalog cache and the
deadline rule."""
