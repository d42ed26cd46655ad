"""logging_layer"""
