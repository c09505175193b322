"""(being written)"""

from flask import Blueprint

blueprint = Blueprint("hooks", __name__)
