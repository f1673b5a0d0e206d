"""forgeml.workflow"""
