"""What speaks of jobs above the database: their public objects (``objects``) and the messages they
send (``messages``). Sits above db/ and portrait/'s core, below api/ and worker/, which both use it."""
