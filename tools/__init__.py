"""Developer tools shared by the browser tests, the README screenshots and the benchmarks (not part of the app)."""
