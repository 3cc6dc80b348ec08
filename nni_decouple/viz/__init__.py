"""Pictures of a search: cell diagrams (:mod:`.diagrams`) and the HTML run report (:mod:`.report`).

matplotlib (the ``viz`` extra) is imported only when a picture is drawn.
"""
