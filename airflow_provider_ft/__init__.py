"""Apache Airflow provider for remote LLM fine-tuning jobs (DashScope, OpenAI, Azure OpenAI, Together AI)."""

__version__ = "0.1.0"
