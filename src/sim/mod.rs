//! Product tools for testing without API keys: an OpenAI emulator ([`mock_openai`]) and a
//! simulated Twilio caller ([`twilio`]) shared by the end-to-end tests and `switchboard loadtest`.

pub mod loadtest;
pub mod mock_openai;
pub mod onwire;
pub mod twilio;
