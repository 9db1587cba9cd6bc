//! Twilio Programmable Messaging and Voice (REST API 2010-04-01).
