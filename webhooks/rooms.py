"""(being written)"""

from flask import Blueprint

blueprint = Blueprint("rooms", __name__)
