"""forgeml.data"""
