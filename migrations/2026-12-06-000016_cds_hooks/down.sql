DROP TABLE cds_feedback;
DROP TABLE cds_cards;
DROP TABLE cds_jtis;
DROP TABLE cds_issuer_directory;
DROP TABLE cds_clients;
