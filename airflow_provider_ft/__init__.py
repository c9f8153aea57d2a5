"""Apache Airflow provider for remote LLM fine-tuning jobs (DashScope and OpenAI)."""

__version__ = "0.1.0"
