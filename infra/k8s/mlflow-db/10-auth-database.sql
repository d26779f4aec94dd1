-- Run once, when the data directory is first initialised (the postgres image's initdb hook): MLflow's
-- basic-auth app keeps its users in a database of its own (its migrations would collide with the
-- tracking store's in one database).
CREATE DATABASE mlflow_auth;
