"""project_library"""
