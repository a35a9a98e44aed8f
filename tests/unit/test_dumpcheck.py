"""The allow-list a MariaDB restore checks first (store/dumpcheck.py): what mariadb-dump writes
passes, any other statement refuses the file."""

from __future__ import annotations

import pytest

from store.dumpcheck import UnsafeDump, check_lines

# The shapes mariadb-dump 10.11 writes (taken from a dump of our schema), strings with every
# character the dump escapes.
DUMP = r"""/*M!999999\- enable the sandbox mode */
-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)
--
-- Host: 127.0.0.1    Database: plant
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;

DROP TABLE IF EXISTS `rejected_messages`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
/*!40101 SET character_set_client = utf8mb4 */;
CREATE TABLE `rejected_messages` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `topic` varchar(256) NOT NULL,
  `reason` text NOT NULL COMMENT 'why; it -- was refused',
  `received_at` datetime(3) NOT NULL DEFAULT current_timestamp(3),
  PRIMARY KEY (`id`),
  KEY `ix_rejected_received` (`received_at`)
) ENGINE=InnoDB AUTO_INCREMENT=3 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
/*!40101 SET character_set_client = @saved_cs_client */;
LOCK TABLES `rejected_messages` WRITE;
/*!40000 ALTER TABLE `rejected_messages` DISABLE KEYS */;
INSERT INTO `rejected_messages` VALUES
(1,'plant/units/1/x','quote \' back\\slash \\N line\nbreak; SET PASSWORD = 1 /* -- ','2026-12-02 02:31:24.250'),
(2,'t','',-1.2345678901234567e-05,NULL,0x00FF);
INSERT INTO `rejected_messages` VALUES (3,'a;b','c'),(4,'d','e');
/*!40000 ALTER TABLE `rejected_messages` ENABLE KEYS */;
UNLOCK TABLES;
/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;

-- Dump completed on 2026-12-02  2:31:25
"""


def lines(text: str) -> list[bytes]:
    return [line.encode() for line in text.splitlines(keepends=True)]


def test_what_mariadb_dump_writes_passes() -> None:
    check_lines(lines(DUMP), "dump")


@pytest.mark.parametrize("evil", [
    "SET PASSWORD = PASSWORD('attacker-known-1');",  # takes over the restoring admin account
    "ALTER USER plant_admin@'%' IDENTIFIED BY 'x';",
    "GRANT ALL ON *.* TO plant_collector@'%';",
    "CREATE TRIGGER ack BEFORE INSERT ON alarms FOR EACH ROW SET NEW.acknowledged_by = 'alice';",
    "CREATE EVENT e ON SCHEDULE EVERY 1 MINUTE DO DELETE FROM alarms;",
    "DELIMITER ;;",
    "USE mysql;",
    "DROP DATABASE plant;",
    "LOAD DATA LOCAL INFILE '/proc/self/environ' INTO TABLE loot;",
    "\\! touch /tmp/owned",
    "system touch /tmp/owned",
    "/*!50000 SET PASSWORD = PASSWORD('x') */;",
    "/*!40101 SET GLOBAL local_infile = 1 */;",
    "/*!40000 ALTER TABLE `alarms` ADD COLUMN evil INT */;",
    "INSERT INTO `alarms` VALUES (1,'a'); SET PASSWORD = PASSWORD('x');",
    # Settings that would make the server read strings differently from the check.
    "/*!40101 SET SQL_MODE='NO_BACKSLASH_ESCAPES' */;",
    "/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO,NO_BACKSLASH_ESCAPES' */;",
    "/*!40101 SET character_set_client = gbk */;",
    "/*!40101 SET NAMES big5 */;",
    "/*!40103 SET TIME_ZONE='+00:00', SQL_MODE='ANSI_QUOTES' */;",
    "INSERT INTO `alarms` VALUES (1,'a'),/* hidden */(2,'b');",
    "INSERT INTO `alarms` (`id`) SELECT id FROM users;",
    "INSERT INTO `alarms` VALUES (1,'open string",
    "DROP TABLE IF EXISTS `alarms`; DROP TABLE `users`;",
    "-- comment\nSET PASSWORD = PASSWORD('x');",
    "--SET PASSWORD = PASSWORD('x');",  # no space: not a comment to MariaDB
])
def test_any_other_statement_refuses_the_file(evil: str) -> None:
    text = DUMP.replace("UNLOCK TABLES;\n", f"UNLOCK TABLES;\n{evil}\n")
    with pytest.raises(UnsafeDump, match=r"refusing to run it|ends inside"):
        check_lines(lines(text), "dump")


@pytest.mark.parametrize("evil_row", [
    "(3,'x');\nSET PASSWORD = PASSWORD('x');",
    "(3,'x') ; SET PASSWORD = PASSWORD('x');",
    "(3,'x'),(4,'y' -- trailing\n);",
    "(3,(SELECT password_hash FROM users LIMIT 1));",
])
def test_nothing_hides_among_the_rows(evil_row: str) -> None:
    text = DUMP.replace("(2,'t','',-1.2345678901234567e-05,NULL,0x00FF);", f"(2,'t'),\n{evil_row}")
    with pytest.raises(UnsafeDump):
        check_lines(lines(text), "dump")


def test_an_escaped_quote_keeps_the_string_open_as_the_server_reads_it() -> None:
    """With backslash escapes on (the dump's SQL_MODE, and no other is allowed), this is one
    string: harmless data, as MariaDB reads it too."""
    text = DUMP.replace("INSERT INTO `rejected_messages` VALUES (3,'a;b','c'),(4,'d','e');",
                        "INSERT INTO `rejected_messages` VALUES (1,'a\\'); SET PASSWORD = PASSWORD(\\'x');")
    check_lines(lines(text), "dump")


def test_a_statement_left_open_at_the_end_is_refused() -> None:
    with pytest.raises(UnsafeDump, match="ends inside a statement"):
        check_lines(lines("CREATE TABLE `x` (\n  `a` int(11)\n"), "dump")
