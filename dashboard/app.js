// dashboard app
