CREATE TABLE versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name TEXT NOT NULL UNIQUE,
    version INT
);
CREATE TABLE chat_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    msgid TEXT,
    direction TEXT,
    time TIMESTAMP,
    date DATE,
    sip_callid TEXT,
    sip_fromtag TEXT,
    sip_totag TEXT,
    local_uri VARCHAR(128),
    remote_uri VARCHAR(128),
    cpim_from VARCHAR(128),
    cpim_to VARCHAR(128),
    cpim_timestamp TEXT,
    body LONGTEXT,
    content_type TEXT,
    private TEXT,
    status TEXT,
    media_type TEXT,
    uuid TEXT,
    journal_id TEXT,
    encryption TEXT
);
CREATE UNIQUE INDEX chat_messages_msg_idx ON chat_messages (msgid, local_uri, remote_uri);
CREATE INDEX chat_messages_id_idx ON chat_messages (msgid);
CREATE INDEX chat_messages_local_idx ON chat_messages (local_uri);
CREATE INDEX chat_messages_remote_idx ON chat_messages (remote_uri);
-- rows of versions: (1,'sessions',7) (2,'chat_messages',8); file_transfers gets no version row on create
-- journal_mode = delete
