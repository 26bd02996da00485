DROP TABLE pseudonym_keys;
