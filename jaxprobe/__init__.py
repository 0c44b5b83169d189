"""jaxprobe: how much of what a radiology task needs does a vision foundation model keep in its embeddings?

The pipeline, one module per arrow: config -> inputs -> embed -> train -> predictions -> stats -> report
(``python -m jaxprobe.run``); the README's layout section maps each module.
"""
