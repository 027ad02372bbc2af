"""The citizen's inbox: messages any module sends through ``inbox.service.notify``."""
