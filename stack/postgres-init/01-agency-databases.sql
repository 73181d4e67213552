-- Run by the postgres image on its first start (empty data volume): one database per agency,
-- named HUB_DATABASE_PREFIX (default permithub_) + agency, as hub/settings.py expects.
CREATE DATABASE permithub_workpermit;
CREATE DATABASE permithub_card;
CREATE DATABASE permithub_public_security;
CREATE DATABASE permithub_social_insurance;
