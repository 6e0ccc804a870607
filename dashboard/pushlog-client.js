// bundled client
