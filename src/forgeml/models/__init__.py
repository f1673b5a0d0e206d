"""forgeml.models"""
