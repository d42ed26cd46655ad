"""Domain objects and their repositories over the document store."""
