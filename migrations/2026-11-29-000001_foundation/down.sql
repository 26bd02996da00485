DROP TABLE audit_events;
DROP TABLE client_directory;
DROP TABLE api_clients;
DROP TABLE organizations;
DROP TABLE service_secrets;
