CREATE TABLE table_versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name TEXT NOT NULL UNIQUE,
    version INT
);
CREATE TABLE sqlite_sequence(name,seq);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT,
    account_id VARCHAR(128),
    remote_uri VARCHAR(128),
    display_name VARCHAR(128),
    uri VARCHAR(128),
    timestamp TIMESTAMP,
    direction TEXT,
    content LONGTEXT,
    content_type TEXT,
    state TEXT,
    encryption_type TEXT,
    decrypted TEXT,
    decryption_error LONGTEXT,
    disposition TEXT
);
CREATE INDEX messages_remote_idx ON messages (remote_uri);
CREATE INDEX messages_id_idx ON messages (message_id);
CREATE UNIQUE INDEX messages_unq_idx ON messages (message_id, account_id, remote_uri);
CREATE TABLE downloaded_files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id TEXT,
    account_id VARCHAR(128),
    remote_uri VARCHAR(128),
    filename TEXT
);
CREATE INDEX downloaded_files_id_idx ON downloaded_files (file_id);
CREATE UNIQUE INDEX downloaded_files_unq_idx ON downloaded_files (file_id, filename, account_id);
-- rows of table_versions: (1,'table_versions',1) (2,'messages',4) (3,'downloaded_files',1)
-- journal_mode = delete
