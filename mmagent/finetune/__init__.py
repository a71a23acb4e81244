"""mmagent.finetune"""
