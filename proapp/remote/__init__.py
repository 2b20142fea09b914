"""Answering without the web page: a voice call (Twilio, read aloud, answered on the keypad or by voice) or an SMS
conversation, one question at a time, for the instruments a study allows in that channel. The answers are stored
by the questionnaire's own functions (autosave, completion), so storage, audit, alerts and exports are the web's."""
