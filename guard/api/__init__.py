"""The HTTP routers, thin: the OpenAI-compatible endpoints (`openai`), beside the admin API (`guard.admin`) and the
operators' console (`guard.console`). The wire models they read are `guard.openai`'s."""
