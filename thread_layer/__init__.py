"""thread_layer"""
