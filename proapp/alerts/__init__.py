"""Safety signals: alert rules declared in the study files, raised once per occurrence and rule, told to the
patient, notified to the site (e-mail, SMS for urgent ones), escalated until acknowledged, and traced."""
