-- Runs once, when the postgres volume is first created: MLflow gets the database named by
-- POSTGRES_DB (mlflow), Prefect its own database on the same server.
CREATE DATABASE prefect;
