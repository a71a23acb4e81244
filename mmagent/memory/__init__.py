"""mmagent.memory"""
